"""An interactive, self-contained HTML view of the book and fills: best bid/ask/mid lines, fills as
markers, mouse-wheel zoom, drag to pan, hover read-out. Plain canvas + a few lines of JavaScript with
the data embedded as JSON -- no CDN, no server, opens from the MLflow UI's artifact view. Hand-written
because no plotting library with HTML output is among the dependencies."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

_TEMPLATE = """<!doctype html><html><head><meta charset="utf-8"><title>%(title)s</title>
<style>body{font-family:sans-serif;margin:8px}canvas{border:1px solid #ccc;cursor:crosshair}#info{height:1.4em}</style>
</head><body><h3>%(title)s</h3><div>wheel: zoom time &middot; drag: pan &middot; double-click: reset</div>
<canvas id="c" width="1100" height="480"></canvas><div id="info"></div>
<script>
const D = %(data)s;
const c = document.getElementById('c'), g = c.getContext('2d'), info = document.getElementById('info');
let lo = D.t[0], hi = D.t[D.t.length - 1], drag = null;
function idx(t){let a=0,b=D.t.length-1;while(a<b){const m=(a+b)>>1;if(D.t[m]<t)a=m+1;else b=m;}return a;}
function draw(){
  g.clearRect(0,0,c.width,c.height);
  const i0=Math.max(0,idx(lo)-1), i1=Math.min(D.t.length-1,idx(hi)+1);
  let pmin=Infinity,pmax=-Infinity;
  for(let i=i0;i<=i1;i++){pmin=Math.min(pmin,D.bid[i]);pmax=Math.max(pmax,D.ask[i]);}
  const pad=(pmax-pmin)*0.05||1; pmin-=pad; pmax+=pad;
  const X=t=>50+(t-lo)/(hi-lo)*(c.width-60), Y=p=>c.height-30-(p-pmin)/(pmax-pmin)*(c.height-40);
  g.fillStyle='#333';g.font='11px sans-serif';
  for(let k=0;k<=4;k++){const p=pmin+(pmax-pmin)*k/4;g.fillText(p.toFixed(D.dp),2,Y(p)+4);}
  g.fillText('time',c.width/2,c.height-8);
  const step=Math.max(1,Math.floor((i1-i0)/4000));
  for(const [key,col] of [['bid','#2a6f2a'],['ask','#b33'],['mid','#888']]){
    g.strokeStyle=col;g.beginPath();
    for(let i=i0;i<=i1;i+=step){const x=X(D.t[i]),y=Y(D[key][i]);if(i===i0)g.moveTo(x,y);else g.lineTo(x,y);}
    g.stroke();}
  for(const f of D.fills){if(f[0]<lo||f[0]>hi)continue;g.fillStyle=f[2]>0?'#1b5e20':'#8e0000';
    g.beginPath();const x=X(f[0]),y=Y(f[1]);
    if(f[2]>0){g.moveTo(x,y-6);g.lineTo(x-5,y+4);g.lineTo(x+5,y+4);}else{g.moveTo(x,y+6);g.lineTo(x-5,y-4);g.lineTo(x+5,y-4);}
    g.fill();}
}
c.onwheel=e=>{e.preventDefault();const f=e.deltaY>0?1.25:0.8,t=lo+(e.offsetX-50)/(c.width-60)*(hi-lo);
  lo=t-(t-lo)*f;hi=t+(hi-t)*f;draw();};
c.onmousedown=e=>{drag=[e.offsetX,lo,hi];};
c.onmouseup=()=>{drag=null;};
c.ondblclick=()=>{lo=D.t[0];hi=D.t[D.t.length-1];draw();};
c.onmousemove=e=>{
  if(drag){const dt=(e.offsetX-drag[0])/(c.width-60)*(drag[2]-drag[1]);lo=drag[1]-dt;hi=drag[2]-dt;draw();return;}
  const t=lo+(e.offsetX-50)/(c.width-60)*(hi-lo),i=Math.min(D.t.length-1,idx(t));
  info.textContent=new Date(D.t[i]).toISOString()+'  bid '+D.bid[i]+'  ask '+D.ask[i]
    +'  bid size '+D.bsz[i]+'  ask size '+D.asz[i];};
draw();
</script></body></html>"""


def interactive_book_html(book: pd.DataFrame, fills: pd.DataFrame | None = None, max_points: int = 50_000,
                          title: str = "order book and fills") -> str:
    part = book.iloc[-max_points:] if len(book) > max_points else book
    t_ms = (part.timestamp.to_numpy(np.int64) // 1_000_000).tolist()
    prices = np.concatenate([part.bid_price_1.to_numpy(), part.ask_price_1.to_numpy()])
    span = float(np.nanmax(prices) - np.nanmin(prices)) if len(prices) else 1.0
    dp = int(max(0, min(8, 2 - np.floor(np.log10(span or 1.0)))))
    f = fills if fills is not None else pd.DataFrame({"ts": [], "price": [], "side": []})
    f = f[(f.ts >= part.timestamp.iloc[0]) & (f.ts <= part.timestamp.iloc[-1])] if len(part) else f
    data = {"t": t_ms, "bid": part.bid_price_1.round(8).tolist(), "ask": part.ask_price_1.round(8).tolist(),
            "mid": ((part.bid_price_1 + part.ask_price_1) / 2).round(8).tolist(),
            "bsz": part.bid_size_1.round(6).tolist(), "asz": part.ask_size_1.round(6).tolist(),
            "fills": [[int(ts) // 1_000_000, float(px), float(sd)] for ts, px, sd in
                      zip(f.ts, f.price, f.side, strict=True)], "dp": dp}
    return _TEMPLATE % {"title": title, "data": json.dumps(data, allow_nan=False)}
