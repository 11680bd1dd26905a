"""keel.policy"""
