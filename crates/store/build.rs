//! Rebuild when a migration changes: `sqlx::migrate!` embeds the SQL files at compile time but
//! does not tell Cargo to watch them on stable Rust.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
