#include "imgdl/shard.hpp"

#include <charconv>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <system_error>

namespace imgdl {
namespace {

/// A decimal number of the whole text, or nullopt ("", "-1", "1x", overflow).
std::optional<std::size_t> parse_number(std::string_view text) noexcept {
  std::size_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || ptr != end)
    return std::nullopt;
  return value;
}

/// Reads the environment through `env`.
class Environment {
 public:
  explicit Environment(const EnvironmentLookup& env) : env_(env) {}

  bool has(const char* name) const {
    const char* value = get(name);
    return value != nullptr && *value != '\0';
  }

  /// The variable as a number; throws naming it when it is set but not one.
  std::size_t number(const char* name) const {
    const char* value = get(name);
    const auto n = value ? parse_number(value) : std::nullopt;
    if (!n)
      throw std::invalid_argument(std::string("--shard auto: ") + name + " is " +
                                  (value ? "'" + std::string(value) + "'" : std::string("not set")) +
                                  ", not a number");
    return *n;
  }

 private:
  const char* get(const char* name) const { return env_ ? env_(name) : std::getenv(name); }

  const EnvironmentLookup& env_;
};

/// K and N from the environment of the first engine found; N is 0 when the engine gives none
/// (Kubernetes). `engine` names the variables, for messages.
struct Found {
  std::size_t index = 0;
  std::size_t count = 0;
  std::string engine;
};

std::optional<Found> from_environment(const Environment& env) {
  if (env.has("SLURM_ARRAY_TASK_ID")) {
    const std::size_t id = env.number("SLURM_ARRAY_TASK_ID");
    const std::size_t min = env.number("SLURM_ARRAY_TASK_MIN");
    const std::size_t step = env.has("SLURM_ARRAY_TASK_STEP") ? env.number("SLURM_ARRAY_TASK_STEP") : 1;
    const std::size_t count = env.number("SLURM_ARRAY_TASK_COUNT");
    if (step == 0 || id < min || (id - min) % step != 0)
      throw std::invalid_argument("--shard auto: cannot number this Slurm array task (SLURM_ARRAY_TASK_ID " +
                                  std::to_string(id) + ", _MIN " + std::to_string(min) + ", _STEP " +
                                  std::to_string(step) +
                                  "): submit the array as a range, --array=A-B or A-B:S");
    return Found{(id - min) / step, count, "the Slurm array (SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT)"};
  }
  if (env.has("OMPI_COMM_WORLD_RANK"))
    return Found{env.number("OMPI_COMM_WORLD_RANK"), env.number("OMPI_COMM_WORLD_SIZE"),
                 "Open MPI (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE)"};
  if (env.has("PMI_RANK"))
    return Found{env.number("PMI_RANK"), env.number("PMI_SIZE"), "PMI (PMI_RANK, PMI_SIZE)"};
  if (env.has("SLURM_PROCID") && env.has("SLURM_NTASKS"))
    return Found{env.number("SLURM_PROCID"), env.number("SLURM_NTASKS"),
                 "the Slurm job step (SLURM_PROCID, SLURM_NTASKS)"};
  if (env.has("JOB_COMPLETION_INDEX"))
    return Found{env.number("JOB_COMPLETION_INDEX"), 0, "the Kubernetes Indexed Job (JOB_COMPLETION_INDEX)"};
  return std::nullopt;
}

void check(const Shard& shard, std::string_view from) {
  if (shard.count == 0)
    throw std::invalid_argument(std::string(from) + ": the shard count must be at least 1");
  if (shard.index >= shard.count)
    throw std::invalid_argument(std::string(from) + ": shard " + std::to_string(shard.index) +
                                " is not below the shard count " + std::to_string(shard.count) +
                                " (shards are numbered from 0: 0/" + std::to_string(shard.count) + " to " +
                                std::to_string(shard.count - 1) + "/" + std::to_string(shard.count) + ")");
}

}  // namespace

std::string Shard::id() const {
  return "shard-" + std::to_string(index) + "-of-" + std::to_string(count);
}

Shard parse_shard(std::string_view text, std::size_t block_size, const EnvironmentLookup& env) {
  if (block_size == 0)
    throw std::invalid_argument("the shard block size must be at least 1");
  const std::string quoted = "--shard '" + std::string(text) + "'";
  const std::size_t slash = text.find('/');
  const std::string_view first = text.substr(0, slash);
  const std::optional<std::string_view> second =
      slash == std::string_view::npos ? std::nullopt : std::optional(text.substr(slash + 1));
  std::optional<std::size_t> given_count;
  if (second) {
    given_count = parse_number(*second);
    if (!given_count)
      throw std::invalid_argument(quoted + ": not K/N, auto or auto/N (K and N whole numbers, e.g. 0/4)");
  }

  Shard shard;
  shard.block_size = block_size;
  if (first == "auto") {
    const Environment environment(env);
    const auto found = from_environment(environment);
    if (!found)
      throw std::invalid_argument(
          quoted +
          ": no shard in the environment: none of SLURM_ARRAY_TASK_ID (a Slurm job array), "
          "OMPI_COMM_WORLD_RANK (Open MPI), PMI_RANK, SLURM_PROCID with SLURM_NTASKS, or "
          "JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; give the shard as K/N");
    shard.index = found->index;
    if (found->count == 0) {
      if (!given_count)
        throw std::invalid_argument(
            quoted + ": " + found->engine +
            " gives no shard count: use --shard auto/N, N being the Job's completions");
      shard.count = *given_count;
    } else {
      if (given_count && *given_count != found->count)
        throw std::invalid_argument(quoted + ": " + found->engine + " says " + std::to_string(found->count) +
                                    " shards, not " + std::to_string(*given_count));
      shard.count = found->count;
    }
    check(shard, quoted + " (from " + found->engine + ")");
    return shard;
  }

  const auto index = parse_number(first);
  if (!index || !given_count)
    throw std::invalid_argument(quoted + ": not K/N, auto or auto/N (K and N whole numbers, e.g. 0/4)");
  shard.index = *index;
  shard.count = *given_count;
  check(shard, quoted);
  return shard;
}

}  // namespace imgdl
