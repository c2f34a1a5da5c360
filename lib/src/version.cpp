#include "imgdl/version.hpp"

#include "version_config.hpp"

namespace imgdl {

std::string_view version() noexcept { return IMGDL_VERSION_STRING; }

std::string_view project_url() noexcept { return IMGDL_PROJECT_URL; }

}  // namespace imgdl
