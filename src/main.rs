fn main() {
    let code = match camera_service::cli::parse_args(std::env::args().skip(1)) {
        Ok(inv) => camera_service::cli::run(inv),
        Err(e) => {
            eprintln!("camera-service: {e}\n\n{}", camera_service::cli::USAGE);
            2
        }
    };
    std::process::exit(code);
}
