"""The vocabulary every layer speaks, importing nothing else of ours.

`types` (Call, RequestContext, the Adapter and Policy protocols), `errors` (the one error tree), `tokens`
(tiktoken counts), `sqlite` (the embedded database opener). adapters/, policies/ and recordings/ import only this.
"""
