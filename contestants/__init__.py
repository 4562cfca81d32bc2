"""Contestants: whole applications measured beside the harness's own scoring loop, each with the driver that
builds, starts and stops it. The broker, the topics, the load and the measurement stay the harness's.

    kstreams_mojo/  the reference architecture: a Java 17 Kafka Streams application with the H2O MOJO
                    embedded (Maven project; its README says what it does)
    kstreams.py     its driver: builds the jar when the sources change, runs it as a child process, stops it
    errors.py       the one error a contestant raises
"""
