use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, grove::Record)]
struct User {
    #[key]
    id: u64,
    #[index]
    tags: HashMap<String, u32>,
}

fn main() {}
