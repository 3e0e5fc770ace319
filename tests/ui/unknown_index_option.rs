use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, grove::Record)]
struct User {
    #[key]
    id: u64,
    #[index(uniq)]
    email: String,
}

fn main() {}
