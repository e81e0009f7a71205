package migrations

// Files exposes the embedded migrations to the external test package, which
// cannot be this package because it uses pgtest, which imports this one.
var Files = files
