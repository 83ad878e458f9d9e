// An app bundled with Vite: the component from the package, lit resolved as its dependency.
import 'big-uploader/component/define';

const uploader = document.createElement('big-uploader');
uploader.endpoint = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/upload`;
uploader.setAttribute('auto-start', '');
document.body.append(uploader);
