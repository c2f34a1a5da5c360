#pragma once
// Input excerpts for error messages.

#include <string>
#include <string_view>

namespace imgdl::detail {

/// A display-safe excerpt of input for an error message: a CLI prints it to a terminal, so control
/// bytes become \xNN (no escape sequences), cut to about 200 bytes. Thread-safe: pure.
std::string display_text(std::string_view s);

}  // namespace imgdl::detail
