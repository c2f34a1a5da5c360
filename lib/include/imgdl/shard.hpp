#pragma once
// Splitting one input list over N processes (machines, Slurm array tasks, Kubernetes pods): which of
// the list's positions this process takes, decided by fixed-size blocks so the work units do not
// depend on N.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "imgdl/export.hpp"

namespace imgdl {

/// Shard K of N of an input list, by blocks of `block_size` positions: position p is in block
/// p / block_size, and block b belongs to shard b mod N. A position is a URL's place in the input,
/// counted from 0 over the URLs the list yields (the report's `index`: invalid lines, blanks and
/// comments take none), so every process reading the same list numbers it the same way and the N
/// shards together take every position exactly once. A block is a unit of work: running the list as
/// 4 shards or 40 moves whole blocks, never splits one.
///
/// With WebDataset output (tar shard t holds positions t × shard_size to (t + 1) × shard_size − 1) a
/// block_size that is a multiple of the tar shard size keeps each tar shard inside one block, so two
/// processes never write the same tar: see fits_tar_shards().
///
/// Plain data: copy and share freely; every member function is pure and thread-safe.
struct Shard {
  /// The default block: big enough that a shard reads long runs of its own rows, small enough
  /// that N shards of a list of a million URLs still get a fair share each; a multiple of the
  /// default WebDataset shard size (10,000).
  static constexpr std::size_t default_block_size = 10'000;

  std::size_t index = 0;                        ///< K, from 0
  std::size_t count = 1;                        ///< N, at least 1
  std::size_t block_size = default_block_size;  ///< positions per block, at least 1

  /// Whether position `position` is this shard's. A count or block_size of 0 owns nothing.
  [[nodiscard]] bool owns(std::size_t position) const noexcept {
    return count != 0 && block_size != 0 && (position / block_size) % count == index;
  }

  /// Whether tar shards of `samples_per_tar` positions each fall inside one block (block_size is a
  /// multiple of it), so that processes writing WebDataset shards never write the same one.
  [[nodiscard]] bool fits_tar_shards(std::size_t samples_per_tar) const noexcept {
    return samples_per_tar != 0 && block_size % samples_per_tar == 0;
  }

  /// "shard-K-of-N": a name for what belongs to this shard alone (its report, its run journal).
  [[nodiscard]] IMGDL_API std::string id() const;

  friend bool operator==(const Shard&, const Shard&) = default;
};

/// Looks an environment variable up: its value, or null when it is not set. parse_shard's default
/// is std::getenv; tests pass their own.
using EnvironmentLookup = std::function<const char*(const char* name)>;

/// Parses a shard given on a command line:
///  - "K/N": shard K of N, 0 <= K < N ("0/4" to "3/4");
///  - "auto": K and N from the environment of the first engine found, in this order:
///    a Slurm job array (K = (SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP,
///    N = SLURM_ARRAY_TASK_COUNT; the step is 1 when unset), Open MPI (OMPI_COMM_WORLD_RANK and
///    OMPI_COMM_WORLD_SIZE), a PMI launcher such as MPICH's or srun's (PMI_RANK and PMI_SIZE), a Slurm
///    job step of several tasks (SLURM_PROCID and SLURM_NTASKS);
///  - "auto/N": the same with N given, which must agree with the environment's when it has one; it is
///    needed for a Kubernetes Indexed Job, whose pods see only JOB_COMPLETION_INDEX (K), N being the
///    Job's `completions`.
/// Throws std::invalid_argument with a message for the user (naming the value or the variables) when
/// the text is malformed, K >= N, N is 0, block_size is 0, or "auto" finds no engine it knows.
/// Thread-safe if `env` is (std::getenv is, while nobody changes the environment).
[[nodiscard]] IMGDL_API Shard parse_shard(std::string_view text,
                                          std::size_t block_size = Shard::default_block_size,
                                          const EnvironmentLookup& env = {});

}  // namespace imgdl
