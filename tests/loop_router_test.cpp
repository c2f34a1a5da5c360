// Routing URLs to transfer loops: a host stays on one loop (one connection cache) unless it is busy
// (its loop borrows another's free slots rather than handing it URLs: see slot_pool_test).

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "loop_router.hpp"

using imgdl::detail::LoopLoad;
using imgdl::detail::LoopRouter;

TEST_CASE("a quiet host's URLs all go to one loop, and hosts spread over the loops") {
  LoopRouter router(128, 8);
  const std::vector<LoopLoad> loads{{40}, {40}};
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
  std::vector<LoopLoad> loads{{0}, {0}};
  for (int i = 0; i < 100; ++i)
    ++loads[router.route("https://cdn.example:443", loads)].unfinished;
  CHECK(loads[0].unfinished >= 45);
  CHECK(loads[1].unfinished >= 45);
}

TEST_CASE("a quiet host stays on its loop however long that loop's queue is") {
  LoopRouter router(128, 8);
  const std::string origin = "https://a.example:443";
  const std::size_t home = router.route(origin, std::vector<LoopLoad>{{0}, {0}});
  std::vector<LoopLoad> loads(2);
  loads[home] = {1000};
  loads[1 - home] = {0};
  CHECK(router.route(origin, loads) == home);  // the idle loop lends it slots instead (SlotPool)
}

TEST_CASE("one loop takes everything") {
  LoopRouter router(4, 2);
  CHECK(router.route("https://a.example:443", std::vector<LoopLoad>{{100}}) == 0);
}
