document.getElementById("app").textContent = "retake console";
