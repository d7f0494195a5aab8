pub mod kernel_echo;
pub mod kernel_gen;
