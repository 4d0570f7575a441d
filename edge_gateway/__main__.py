"""`python -m edge_gateway`: run one DCU's gateway configured by SWITCHYARD_* environment."""

from edge_gateway.app import main

main()
