fn main() {
    std::process::exit(retake_cli::main_entry());
}
