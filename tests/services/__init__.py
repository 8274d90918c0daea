"""Real servers the scale-out backends are tested against, each started on 127.0.0.1 for the tests.

When a server's binary is missing the tests that need it skip with a loud notice; with
KAWA_TEST_REQUIRE_SERVICES=1 (CI) they fail instead, so CI never passes by skipping.
"""
