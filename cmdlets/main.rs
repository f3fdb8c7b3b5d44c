//! `containerimage`: the command line of the ContainerImage provider.

fn main() {
    std::process::exit(2);
}
