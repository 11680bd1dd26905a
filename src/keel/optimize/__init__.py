"""keel.optimize"""
