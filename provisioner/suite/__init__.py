"""`envctl run`: bring an environment up, run the suite against it (repeatedly), report, and
always tear down. `run` holds the whole sequence (the command itself runs through
provisioner.command), `verdict` adds the runs up, `junit` reads results, `report` shows them,
`workers` clones a database per test worker. Import from the module that holds a name."""
