//! System tests against the local stack live in tests/*.rs.
