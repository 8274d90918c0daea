"""`kawa serve`: one supervisor over the API, the lake writer and the other workers."""
