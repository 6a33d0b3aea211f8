// Package docs holds Starcite's documentation, the Markdown files in this
// directory: api.md (the client contract), architecture.md (how the code
// serves it), decisions.md (numbered decision records), operations.md,
// performance.md, reliability.md and security.md.
//
// It has no code. Its test keeps the repository self-contained: every
// reference from code, scripts and documents to docs/<file>.md#<section>
// names an existing file and section, nothing refers to documents outside
// the repository, the paths and Go names the documents mention exist, and
// the README stays short.
package docs
