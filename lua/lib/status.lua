-- STATUS: the closed set of status codes a script replies with, as the first element of its reply.
-- scheduler/_status.py mirrors this table; tests/unit/test_parity.py checks that the two agree.
local STATUS = {
  ok = "ok",                 -- the call did what it was asked
  empty = "empty",           -- nothing to do (claim found no ready job)
  not_found = "not_found",   -- no job with that id
  duplicate = "duplicate",   -- a repeat of an earlier call: the first call's outcome, nothing new
  lease_lost = "lease_lost", -- the token is not the job's current lease, or the lease expired
  bad_state = "bad_state",   -- the job exists but is in a state the call does not apply to
  unreadable = "unreadable", -- the job's record is one this code cannot read; nothing changed
  bad_arg = "bad_arg",       -- an argument failed validation; nothing was written
}
-- STATE: the states a job can be in; exactly one at any instant. Mirrors scheduler/_status.py State.
local STATE = {
  waiting = "waiting",       -- ready to be claimed, in the ready ZSET
  delayed = "delayed",       -- waiting for its run-at time, in the delayed ZSET
  active = "active",         -- leased to a worker, in the active ZSET scored by lease deadline
  completed = "completed",   -- finished with a result, in the completed ZSET scored by expiry
  dead = "dead",             -- failed for good, in the dead ZSET scored by expiry
  cancelled = "cancelled",   -- cancelled before it ran, in the cancelled ZSET scored by expiry
}
-- OUTCOME: how a lease ended; kept with the lease token so that a repeated call can answer with it.
local OUTCOME = {
  running = "running",       -- the lease is still held
  completed = "completed",   -- complete() was accepted
  retry = "retry",           -- fail() sent the job back to waiting or delayed
  dead = "dead",             -- fail() or an expiry sent the job to the dead letters
  expired = "expired",       -- the lease ran out and the job went back to waiting
  returned = "returned",     -- the worker handed the job back unfinished (release)
  none = "",                 -- never claimed
}
-- UNREADABLE: why a record cannot be read (lib/job.lua job_decode), as stats and inspect name it.
local UNREADABLE = {
  newer = "newer",           -- written by a newer version of this code: left untouched
  corrupt = "corrupt",       -- no version can read it: moved to the quarantine
}
