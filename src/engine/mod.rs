//! Rule engine: per rule+series state machine and the group scheduler.
