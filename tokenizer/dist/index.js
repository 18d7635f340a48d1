"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.TokenizerNotFoundError = exports.defaultHubCache = exports.resolveTokenizerFiles = exports.ModelTokenizer = void 0;
/** A model's tokenizer and chat template applied as vLLM applies them. */
var model_tokenizer_1 = require("./model-tokenizer");
Object.defineProperty(exports, "ModelTokenizer", { enumerable: true, get: function () { return model_tokenizer_1.ModelTokenizer; } });
var resolve_1 = require("./resolve");
Object.defineProperty(exports, "resolveTokenizerFiles", { enumerable: true, get: function () { return resolve_1.resolveTokenizerFiles; } });
Object.defineProperty(exports, "defaultHubCache", { enumerable: true, get: function () { return resolve_1.defaultHubCache; } });
Object.defineProperty(exports, "TokenizerNotFoundError", { enumerable: true, get: function () { return resolve_1.TokenizerNotFoundError; } });
//# sourceMappingURL=index.js.map