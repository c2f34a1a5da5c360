// Routing URLs to transfer loops: a host stays on one loop (one connection cache) unless it is busy
// or its loop has a backlog while another is idle.

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "loop_router.hpp"

using imgdl::detail::LoopLoad;
using imgdl::detail::LoopRouter;

TEST_CASE("a quiet host's URLs all go to one loop, and hosts spread over the loops") {
  LoopRouter router(128, 8);
  const std::vector<LoopLoad> loads{{40, 32}, {40, 32}};
  std::vector<int> per_loop(2);
  for (int h = 0; h < 200; ++h) {
    const std::string origin = "https://127.0.1." + std::to_string(h) + ":443";
    std::set<std::size_t> chosen;
    for (int i = 0; i < 3; ++i)
      chosen.insert(router.route(origin, loads));
    CHECK(chosen.size() == 1);
    ++per_loop[*chosen.begin()];
  }
  CHECK(per_loop[0] > 60);
  CHECK(per_loop[1] > 60);
}

TEST_CASE("a busy host balances the loops") {
  LoopRouter router(128, 8);
  std::vector<LoopLoad> loads{{0, 32}, {0, 32}};
  for (int i = 0; i < 100; ++i)
    ++loads[router.route("https://cdn.example:443", loads)].unfinished;
  CHECK(loads[0].unfinished >= 45);
  CHECK(loads[1].unfinished >= 45);
}

TEST_CASE("a quiet host spills only to an idle loop when its own has twice its slots of URLs") {
  LoopRouter router(128, 8);
  const std::string origin = "https://a.example:443";
  const std::size_t home = router.route(origin, std::vector<LoopLoad>{{0, 32}, {0, 32}});
  const std::size_t other = 1 - home;
  std::vector<LoopLoad> loads(2);
  loads[home] = {63, 32};
  loads[other] = {0, 32};
  CHECK(router.route(origin, loads) == home);  // a backlog, but less than twice its slots
  loads[home] = {64, 32};
  loads[other] = {1, 32};
  CHECK(router.route(origin, loads) == home);  // the other loop is not idle
  loads[other] = {0, 32};
  CHECK(router.route(origin, loads) == other);
}

TEST_CASE("one loop takes everything") {
  LoopRouter router(4, 2);
  CHECK(router.route("https://a.example:443", std::vector<LoopLoad>{{100, 1}}) == 0);
}
