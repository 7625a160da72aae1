//! Scenarios shared by fastzap's loom and shuttle models.
