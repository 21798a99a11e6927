"""An example host platform that frames the client portal and consumes credits through its API."""
