"""keel.venues"""
