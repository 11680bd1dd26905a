"""keel.backtest"""
