// `sqlx::migrate!` embeds server/migrations at compile time; without this
// a new or edited migration alone would not rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
