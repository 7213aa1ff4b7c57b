"""The ``telucodec`` command line (``main``) and its many-files mode (``batch``)."""
