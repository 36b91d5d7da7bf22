//! Evaluate one filter in Port's dialect and print the first output (or the error).
//!
//! `cargo run -p portolan-jq --example eval -- '<filter>' '[<json input>]'`
use portolan_jq::JqEngine;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let filter = args.next().unwrap_or_else(|| ".".to_owned());
    let input = match args.next().map(|s| serde_json::from_str(&s)) {
        None => serde_json::Value::Null,
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            eprintln!("input is not JSON: {e}");
            std::process::exit(2);
        }
    };
    let engine = JqEngine::new();
    let start = Instant::now();
    let result = engine.first(&filter, &input);
    let took = start.elapsed();
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => println!("error: {e}"),
    }
    eprintln!("({took:?})");
}
