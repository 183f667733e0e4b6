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
})();
