// Package e2e tests a single real starcite process from outside: the HTTP
// contract in none mode, concurrent appends, configuration errors at
// boot, and durability across kill -9 and restart.
package e2e
