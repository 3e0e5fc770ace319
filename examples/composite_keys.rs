//! A typed map with composite keys: readings by (sensor, day, hour), with range queries
//! and prefix scans that follow the tuple's order.
//!
//! ```text
//! cargo run --example composite_keys
//! ```

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("grove-composite-{}", std::process::id()));
    let db = grove::open(&dir)?;
    let readings = db.map::<(String, u16, u8), f64>("readings")?;

    // Three sensors, ten days, 24 hours: one atomic batch.
    let mut rows = Vec::new();
    for sensor in ["attic", "cellar", "garden"] {
        for day in 0..10u16 {
            for hour in 0..24u8 {
                let celsius = f64::from(day) + f64::from(hour) / 10.0;
                rows.push(((sensor.to_string(), day, hour), celsius));
            }
        }
    }
    readings.extend(rows)?;
    println!("{} readings", readings.len()?);

    // Everything from one sensor: a prefix of the key's leading fields.
    let cellar = readings.prefix(&("cellar",)).count();
    println!("cellar: {cellar} readings");

    // One sensor, one day: a longer prefix.
    let day3: Vec<f64> =
        readings.prefix(&("garden", &3u16)).map(|e| e.map(|(_, c)| c)).collect::<Result<_, _>>()?;
    println!(
        "garden, day 3: {} readings, max {:.1}",
        day3.len(),
        day3.iter().copied().fold(f64::MIN, f64::max)
    );

    // A range across days, in key order: attic from day 2, 12:00 to day 4, 12:00.
    let from = ("attic".to_string(), 2, 12);
    let to = ("attic".to_string(), 4, 12);
    let span = readings.range(&from..&to).count();
    println!("attic, day 2 noon to day 4 noon: {span} readings");

    // The latest reading of each sensor: the last key under its prefix.
    for sensor in ["attic", "cellar", "garden"] {
        if let Some(entry) = readings.prefix(&(sensor,)).next_back() {
            let ((_, day, hour), celsius) = entry?;
            println!("{sensor}: last reading day {day} {hour}:00, {celsius:.1} C");
        }
    }
    drop(readings);
    drop(db);
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
