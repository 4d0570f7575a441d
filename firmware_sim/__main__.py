"""`python -m firmware_sim`: run the meter simulator configured by the environment."""

from firmware_sim.app import main

if __name__ == "__main__":
    main()
