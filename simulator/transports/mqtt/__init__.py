"""MQTT: the settings and the base shared by both clients, the packets, barnstorm's own
publish client (MQTT 3.1.1), the gmqtt client (MQTT 5) and the subscriber.
"""
