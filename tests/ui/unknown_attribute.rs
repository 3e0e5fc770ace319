use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, grove::Record)]
#[record(nmae = "users")]
struct User {
    #[key]
    id: u64,
}

fn main() {}
