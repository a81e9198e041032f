"""The Faust worker: the app, its tables, its flows and the helpers they run on."""
