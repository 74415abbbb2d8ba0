//! Sources of samples: the push API (JSON) and, later, remote_write, scrapes and queries.
