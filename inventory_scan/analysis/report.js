(function(){
  const table=document.getElementById('interfaces');
  const rows=()=>Array.from(table.tBodies[0].rows);
  const text=document.getElementById('filter-text');
  const selects=Array.from(document.querySelectorAll('.filters select'));
  function apply(){
    const needle=text.value.trim().toLowerCase();
    let shown=0;
    rows().forEach(function(row){
      let ok=!needle||row.textContent.toLowerCase().indexOf(needle)>=0;
      selects.forEach(function(select){ if(select.value&&row.dataset[select.dataset.field]!==select.value){ok=false;} });
      row.hidden=!ok; if(ok){shown++;}
    });
    document.getElementById('shown').textContent=shown;
  }
  text.addEventListener('input',apply); selects.forEach(function(s){s.addEventListener('change',apply);});
  Array.from(table.tHead.rows[0].cells).forEach(function(cell,index){
    if(!cell.classList.contains('sortable')){return;}
    cell.addEventListener('click',function(){
      const numeric=cell.classList.contains('num'); const up=cell.dataset.dir!=='up'; cell.dataset.dir=up?'up':'down';
      const sorted=rows().sort(function(a,b){
        const x=a.cells[index].dataset.value||a.cells[index].textContent, y=b.cells[index].dataset.value||b.cells[index].textContent;
        const d=numeric?(parseFloat(x)||0)-(parseFloat(y)||0):x.localeCompare(y);
        return up?d:-d;
      });
      sorted.forEach(function(row){table.tBodies[0].appendChild(row);});
    });
  });
  function openTarget(){
    const id=decodeURIComponent(location.hash.slice(1)); const target=id&&document.getElementById(id);
    if(target&&target.tagName==='DETAILS'){target.open=true;}
  }
  window.addEventListener('hashchange',openTarget); openTarget(); apply();

  // The rows shown, as CSV, made here: nothing leaves the page.
  document.getElementById('export-csv').addEventListener('click',function(){
    const quote=function(cell){ const text=cell.textContent.trim(); return /[",\n]/.test(text)?'"'+text.replace(/"/g,'""')+'"':text; };
    const lines=[Array.from(table.tHead.rows[0].cells).map(quote).join(',')];
    rows().filter(function(row){return !row.hidden;}).forEach(function(row){ lines.push(Array.from(row.cells).map(quote).join(',')); });
    const link=document.createElement('a');
    link.href=URL.createObjectURL(new Blob([lines.join('\r\n')+'\r\n'],{type:'text/csv'}));
    link.download='interfaces.csv'; document.body.appendChild(link); link.click(); link.remove();
  });

  // The graph: fit the box on load, zoom with the buttons or Ctrl + wheel, pan by dragging.
  const box=document.getElementById('graph-box'); const svg=document.getElementById('graph');
  if(box&&svg){
    const natural=parseFloat(svg.dataset.width)||svg.viewBox.baseVal.width;
    let natural_height=svg.viewBox.baseVal.height;

    const level=document.getElementById('zoom-level');
    let scale=1;
    function zoom(next){
      scale=Math.min(4,Math.max(0.2,next));
      svg.setAttribute('width',String(Math.round(natural*scale))); svg.setAttribute('height',String(Math.round(natural_height*scale)));
      level.textContent=Math.round(scale*100)+' %';
    }
    function fit(){ zoom(Math.min(1,(box.clientWidth-2)/natural)); }
    document.querySelectorAll('.graph-tools button').forEach(function(button){
      button.addEventListener('click',function(){
        const how=button.dataset.zoom;
        if(how==='fit'){fit();} else if(how==='actual'){zoom(1);} else {zoom(scale*(how==='in'?1.25:0.8));}
      });
    });
    box.addEventListener('wheel',function(event){
      if(!event.ctrlKey){return;}
      event.preventDefault(); zoom(scale*(event.deltaY<0?1.1:0.9));
    },{passive:false});
    let drag=null;
    box.addEventListener('pointerdown',function(event){
      if(event.target.closest('a')){return;}
      drag={x:event.clientX,y:event.clientY,left:box.scrollLeft,top:box.scrollTop}; box.classList.add('panning');
    });
    window.addEventListener('pointermove',function(event){
      if(!drag){return;}
      box.scrollLeft=drag.left-(event.clientX-drag.x); box.scrollTop=drag.top-(event.clientY-drag.y);
    });
    window.addEventListener('pointerup',function(){ drag=null; box.classList.remove('panning'); });
    // Each connected part folds to its heading; the parts below move up, and the picture shrinks.
    const parts=Array.from(svg.querySelectorAll('.part'));
    function restack(){
      let top=0;
      parts.forEach(function(part){
        part.setAttribute('transform','translate(0,'+top+')');
        top+=part.classList.contains('folded')?26:parseFloat(part.dataset.height);
      });
      natural_height=Math.max(top,26); svg.setAttribute('viewBox','0 0 '+natural+' '+natural_height);
      zoom(scale);
    }
    parts.forEach(function(part){
      const head=part.querySelector('.part-head'); const label=head.querySelector('text');
      function toggle(){
        const folded=part.classList.toggle('folded');
        head.setAttribute('aria-expanded',String(!folded));
        label.textContent=(folded?'▸':'▾')+label.textContent.slice(1);
        restack();
      }
      head.addEventListener('click',toggle);
      head.addEventListener('keydown',function(event){
        if(event.key==='Enter'||event.key===' '){event.preventDefault(); toggle();}
      });
    });
    fit();
  }
})();
