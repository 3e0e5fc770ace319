use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, grove::Record)]
struct UserV1 {
    #[key]
    id: u64,
}

#[derive(Serialize, Deserialize, grove::Record)]
#[record(from = UserV1)]
struct User {
    #[key]
    id: u64,
}

fn main() {}
