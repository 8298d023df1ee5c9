// The convtrain dashboard: the job list, a network editor that validates as you type, and a live
// view of one job (charts, layer pictures, predictions, controls). Plain DOM and canvas, no
// dependencies and no build step; no inline code, no eval and no innerHTML, so a content security
// policy of 'self' alone is enough.
//
// This file is the page's entry, served as /dashboard/app.js; it only starts the parts. Each part
// is an ES module in service/static/dashboard-NAME.js, served as /dashboard/NAME.js from the fixed
// table in service/api/dashboard.py, which is why `import ... from "./NAME.js"` finds it. (The
// files lie flat beside this one because the package ships service/static/* and no subfolder.)
//
// Imports point one way, from the views down to api.js, dom.js and format.js; the two calls that
// point back up (a row of the job list selects a job, a control shows the job it changed) are
// passed in below.
//
//   api.js        fetch, problem+json errors, the OpenAPI document, signing in
//   dom.js        $ and h, the element builder          format.js   numbers and times as text
//   state.js      the shown job, which the views share
//   jobs-list.js  the job list                          editor.js   the spec editor and Train
//   spec-lines.js where in the spec an error is      datasets.js the dataset picker and upload box
//   job.js        one job: select, follow, header       charts.js   loss and accuracy charts
//   controls.js   pause, resume, cancel, trainer form   layers.js   layer pictures
//   predictions.js  test predictions and your own image
//   searches.js   the search list, and one search: its figure and leaderboard (rows open trials' jobs)

import { initSession } from "./api.js";
import { initControls } from "./controls.js";
import { initEditor } from "./editor.js";
import { initJobView, selectJob, showJob } from "./job.js";
import { initJobsList } from "./jobs-list.js";
import { initPredictions } from "./predictions.js";
import { initSearches } from "./searches.js";

initJobView();
initEditor();
initControls(showJob);
initPredictions();
initSession();
initJobsList(selectJob);
initSearches(selectJob);
const linked = /^#job=([0-9a-f]{8,40})$/.exec(location.hash); // the link selectJob leaves in the address bar
if (linked) selectJob(linked[1]);
