"""keel.risk"""
