"""The ``sodforge`` command line, on top of engine/, tasks/, flows/ and annotation_ui/."""
