// Input and output for hbsctl: documents from files or stdin, atomic output files, and the PIN,
// which comes from the terminal (no echo) or from a file descriptor, never from argv (argv is
// readable by every user through /proc).
#pragma once

#include <stdexcept>
#include <string>

namespace hbsd::hbsctl {

class InputError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// The PIN could not be read (no terminal, bad descriptor): a usage problem.
class PinError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// "-" is stdin.
std::string read_input(const std::string& path);
// Writes to PATH.tmp then renames, so a reader never sees half a document; "-" is stdout.
void write_output(const std::string& path, const std::string& data);
// One line from the file descriptor (newline stripped; EOF ends it too).
std::string read_pin_fd(int fd);
// Prompts on /dev/tty with echo off; restores the terminal even when interrupted by an error.
std::string read_pin_tty(const std::string& prompt);

}  // namespace hbsd::hbsctl
