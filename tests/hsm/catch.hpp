// Catch2 v3 where installed, else Debian 12's Catch2 2.13 (same macros for what we use).
#pragma once
#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif
