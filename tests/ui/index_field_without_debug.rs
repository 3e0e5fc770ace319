use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Email(String);

#[derive(Serialize, Deserialize, grove::Record)]
struct User {
    #[key]
    id: u64,
    #[index(unique)]
    email: Email,
}

fn main() {}
