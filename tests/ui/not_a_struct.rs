use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, grove::Record)]
enum User {
    Admin,
    Guest,
}

fn main() {}
