use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, grove::Record)]
struct User {
    email: String,
}

fn main() {}
