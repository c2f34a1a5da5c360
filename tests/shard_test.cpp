// Shards of an input list: K/N and auto from each engine's environment, blocks, and the bad values.
#include <doctest/doctest.h>

#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "imgdl/shard.hpp"

using imgdl::parse_shard;
using imgdl::Shard;

namespace {

/// An environment of exactly these variables, nothing from the process's.
imgdl::EnvironmentLookup environment(std::map<std::string, std::string> variables) {
  return [variables = std::move(variables)](const char* name) -> const char* {
    const auto it = variables.find(name);
    return it == variables.end() ? nullptr : it->second.c_str();
  };
}

const imgdl::EnvironmentLookup empty = environment({});

/// The message parse_shard throws for `text`, or "" when it accepts it.
std::string refusal(const std::string& text, const imgdl::EnvironmentLookup& env = empty,
                    std::size_t block_size = Shard::default_block_size) {
  try {
    (void)parse_shard(text, block_size, env);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("K/N names shard K of N, numbered from 0, with the block size given") {
  CHECK(parse_shard("0/4", 100, empty) == Shard{0, 4, 100});
  CHECK(parse_shard("3/4", 100, empty) == Shard{3, 4, 100});
  CHECK(parse_shard("0/1", 7, empty) == Shard{0, 1, 7});
  CHECK(parse_shard("2/3").block_size == Shard::default_block_size);
  CHECK(parse_shard("2/3", 5, empty).id() == "shard-2-of-3");
}

TEST_CASE("blocks of positions go round the shards, so every position belongs to exactly one") {
  const std::size_t shards = 3;
  std::vector<int> owners(1000, 0);
  std::vector<std::size_t> first_of_shard(shards, owners.size());
  for (std::size_t k = 0; k < shards; ++k) {
    const Shard shard{k, shards, 10};
    for (std::size_t p = 0; p < owners.size(); ++p) {
      if (shard.owns(p)) {
        ++owners[p];
        first_of_shard[k] = std::min(first_of_shard[k], p);
      }
    }
  }
  for (std::size_t p = 0; p < owners.size(); ++p)
    CHECK_MESSAGE(owners[p] == 1, "position " << p);
  CHECK(first_of_shard == std::vector<std::size_t>{0, 10, 20});
  const Shard second{1, shards, 10};
  CHECK(second.owns(10));
  CHECK(second.owns(19));
  CHECK_FALSE(second.owns(20));
  CHECK(second.owns(40));  // block 4 = 4 mod 3
}

TEST_CASE("a block is a unit of work whatever the number of shards") {
  // Positions 0-9 stay together whether the list runs as 2 shards or 7.
  for (const std::size_t n : {std::size_t{2}, std::size_t{7}}) {
    for (std::size_t k = 0; k < n; ++k) {
      const Shard shard{k, n, 10};
      for (std::size_t p = 1; p < 10; ++p)
        CHECK(shard.owns(p) == shard.owns(0));
    }
  }
}

TEST_CASE("WebDataset tar shards fit a block only when the block size is a multiple of theirs") {
  CHECK(Shard{0, 2, 10000}.fits_tar_shards(10000));
  CHECK(Shard{0, 2, 20000}.fits_tar_shards(10000));
  CHECK(Shard{0, 2, 20000}.fits_tar_shards(400));
  CHECK_FALSE(Shard{0, 2, 10000}.fits_tar_shards(3000));
  CHECK_FALSE(Shard{0, 2, 5000}.fits_tar_shards(10000));
}

TEST_CASE("auto reads a Slurm job array: K from the task id, its minimum and step, N from its count") {
  CHECK(parse_shard("auto", 10,
                    environment({{"SLURM_ARRAY_TASK_ID", "2"},
                                 {"SLURM_ARRAY_TASK_MIN", "0"},
                                 {"SLURM_ARRAY_TASK_STEP", "1"},
                                 {"SLURM_ARRAY_TASK_COUNT", "4"}})) == Shard{2, 4, 10});
  SUBCASE("an array from 5 in steps of 3: tasks 5, 8, 11, 14") {
    CHECK(parse_shard("auto", 10,
                      environment({{"SLURM_ARRAY_TASK_ID", "11"},
                                   {"SLURM_ARRAY_TASK_MIN", "5"},
                                   {"SLURM_ARRAY_TASK_STEP", "3"},
                                   {"SLURM_ARRAY_TASK_COUNT", "4"}})) == Shard{2, 4, 10});
  }
  SUBCASE("no step is a step of 1") {
    CHECK(parse_shard("auto", 10,
                      environment({{"SLURM_ARRAY_TASK_ID", "7"},
                                   {"SLURM_ARRAY_TASK_MIN", "4"},
                                   {"SLURM_ARRAY_TASK_COUNT", "8"}})) == Shard{3, 8, 10});
  }
  SUBCASE("auto/N agrees with the array's count, or is refused") {
    const auto slurm = environment(
        {{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_MIN", "0"}, {"SLURM_ARRAY_TASK_COUNT", "4"}});
    CHECK(parse_shard("auto/4", 10, slurm) == Shard{1, 4, 10});
    CHECK(refusal("auto/5", slurm).find("says 4 shards, not 5") != std::string::npos);
  }
  SUBCASE("an array given as a list that is not a range cannot be numbered") {
    // --array=1,5,7: a task id off the minimum's steps, or past the count.
    CHECK(refusal("auto", environment({{"SLURM_ARRAY_TASK_ID", "6"},
                                       {"SLURM_ARRAY_TASK_MIN", "1"},
                                       {"SLURM_ARRAY_TASK_STEP", "2"},
                                       {"SLURM_ARRAY_TASK_COUNT", "3"}}))
              .find("--array=A-B") != std::string::npos);
    CHECK(refusal("auto", environment({{"SLURM_ARRAY_TASK_ID", "7"},
                                       {"SLURM_ARRAY_TASK_MIN", "1"},
                                       {"SLURM_ARRAY_TASK_COUNT", "3"}}))
              .find("is not below the shard count 3") != std::string::npos);
  }
}

TEST_CASE("auto reads Open MPI, then PMI, then a Slurm job step") {
  CHECK(
      parse_shard("auto", 10, environment({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "8"}})) ==
      Shard{3, 8, 10});
  CHECK(parse_shard("auto", 10, environment({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}})) == Shard{1, 2, 10});
  CHECK(parse_shard("auto", 10, environment({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "6"}})) ==
        Shard{5, 6, 10});
  // An array task wins over the rank its step would also give.
  CHECK(parse_shard("auto", 10,
                    environment({{"SLURM_ARRAY_TASK_ID", "1"},
                                 {"SLURM_ARRAY_TASK_MIN", "0"},
                                 {"SLURM_ARRAY_TASK_COUNT", "2"},
                                 {"SLURM_PROCID", "0"},
                                 {"SLURM_NTASKS", "1"}})) == Shard{1, 2, 10});
}

TEST_CASE("auto/N reads a Kubernetes Indexed Job's JOB_COMPLETION_INDEX, which needs N") {
  const auto pod = environment({{"JOB_COMPLETION_INDEX", "4"}});
  CHECK(parse_shard("auto/10", 10, pod) == Shard{4, 10, 10});
  CHECK(refusal("auto", pod).find("use --shard auto/N") != std::string::npos);
  CHECK(refusal("auto/4", pod).find("shard 4 is not below the shard count 4") != std::string::npos);
}

TEST_CASE("bad shards are refused with a message that says what is wrong") {
  CHECK(refusal("4/4").find(
            "shard 4 is not below the shard count 4 (shards are numbered from 0: 0/4 to 3/4)") !=
        std::string::npos);
  CHECK(refusal("0/0").find("the shard count must be at least 1") != std::string::npos);
  for (const char* malformed : {"", "4", "/4", "1/", "a/b", "-1/4", "1/-4", "1/4/2", "1 /4", "1/4x", "autox",
                                "auto/", "auto/x", "99999999999999999999999/1"})
    CHECK_MESSAGE(refusal(malformed).find("not K/N, auto or auto/N") != std::string::npos, malformed);
  CHECK(refusal("auto").find("no shard in the environment") != std::string::npos);
  CHECK(refusal("auto/4").find("no shard in the environment") != std::string::npos);
  CHECK(refusal("0/4", empty, 0).find("block size must be at least 1") != std::string::npos);
  CHECK(refusal("auto", environment({{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_SIZE", "2"}}))
            .find("OMPI_COMM_WORLD_RANK is 'x', not a number") != std::string::npos);
}

TEST_CASE("a Shard built by hand with a count or block size of 0 owns nothing rather than dividing by 0") {
  CHECK_FALSE(Shard{0, 0, 10}.owns(0));
  CHECK_FALSE(Shard{0, 1, 0}.owns(0));
  CHECK_FALSE(Shard{0, 1, 10}.fits_tar_shards(0));
}
