using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Runtime;
using Microsoft.ML.Cora.Training;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>
/// The Cora trainer: an ML.NET estimator that fits on an IDataView of interactions (user id, item id, label,
/// history of item ids) plus an item catalog, trains the CF stage if none is given, trains the chosen method,
/// and returns a <see cref="CoraTransformer"/> that adds Score, Probability and PredictedLabel.
/// Every option is checked when the trainer is created, before any work starts.
/// </summary>
public sealed class CoraTrainer : IEstimator<CoraTransformer>
{
    /// <summary>Column names and the defaults of the short overload (the numbers come from <see cref="CoraDefaults"/>).</summary>
    public static class Defaults
    {
        /// <summary>The user id column's name (<see cref="CoraInput.UserId"/>).</summary>
        public const string UserIdColumnName = "UserId";
        /// <summary>The target item id column's name (<see cref="CoraInput.ItemId"/>).</summary>
        public const string ItemIdColumnName = "ItemId";
        /// <summary>The label column's name: Boolean (true = the user liked the item), or Single/Double holding 1 and 0.</summary>
        public const string LabelColumnName = "Label";
        /// <summary>The liked-history column's name; under this default name the column may be absent (no history in the prompt).</summary>
        public const string HistoryColumnName = "History";
        /// <summary>The method trained by default: CoRA.</summary>
        public const CoraMethod Method = CoraDefaults.Method;
        /// <summary>Passes over the training rows by default.</summary>
        public const int Epochs = CoraDefaults.Epochs;
    }

    /// <summary>
    /// Options of <see cref="CoraTrainer"/>: one tree, <see cref="Model"/> (method, rank, generator, prompt),
    /// <see cref="Training"/> (epochs, batch, learning rate, schedule, validation, checkpoints) and
    /// <see cref="MatrixFactorization"/> (the CF stage), whose documentation says how to choose each value. The shortcuts
    /// (<see cref="Method"/>, <see cref="Epochs"/>, <see cref="MaxSteps"/>, ...) override the matching value of the tree whatever the
    /// order they are set in; <see cref="EffectiveModel"/> and <see cref="EffectiveTraining"/> show what Fit will use. The nested
    /// options may also be changed in place (<c>options.Training.BatchSize = 4</c>).
    /// </summary>
    public sealed class Options
    {
        /// <summary>User id column (Int32, Int64, UInt32, Single, Double, or a key with key values, e.g. from MapValueToKey).</summary>
        public string UserIdColumnName { get; set; } = Defaults.UserIdColumnName;
        /// <summary>Item id column (same types as the user id). Keys are read back to the original ids through their key values.</summary>
        public string ItemIdColumnName { get; set; } = Defaults.ItemIdColumnName;
        /// <summary>The label: did the user like the item? Boolean, or Single/Double holding 1 and 0. Needed by Fit only.</summary>
        public string LabelColumnName { get; set; } = Defaults.LabelColumnName;
        /// <summary>The user's earlier liked items, oldest first: a vector of ids, or text of space-separated ids.
        /// Ignored when <see cref="PromptColumnName"/> is set.</summary>
        public string HistoryColumnName { get; set; } = Defaults.HistoryColumnName;
        /// <summary>Optional column of ready prompt text; when set, it replaces the built-in template.</summary>
        public string? PromptColumnName { get; set; }
        /// <summary>Optional text column with the target item's title: titles found there are added to the catalog (training and
        /// scoring), so items unknown at training time can be scored.</summary>
        public string? TitleColumnName { get; set; }

        /// <summary>Hugging Face model folder or llama2.c .bin (tokenizer beside it). Not needed for <see cref="CoraMethod.Mf"/>.</summary>
        public string? LlmPath { get; set; }
        /// <summary>"cpu" (default), "cuda", "cuda:N" or "auto" (CUDA when available). Checked when the trainer is created.</summary>
        [Option("--device", "Where to compute: cpu, cuda, cuda:N or auto (auto = CUDA when available).")]
        public string Device { get; set; } = CoraDefaults.Device;
        /// <summary>dtype of the frozen LLM: "auto" (default: bf16 on CUDA, fp32 on the CPU), "bf16", "fp16" or "fp32". The query
        /// generator's weights, the collaborative weights and the loss stay fp32.</summary>
        [Option("--llm-dtype", "dtype of the frozen LLM: auto, bf16, fp16 or fp32 (auto = bf16 on CUDA, fp32 on the CPU). The generator's weights and the loss stay fp32.")]
        public string LlmDtype { get; set; } = CoraDefaults.LlmDtype;
        /// <summary>dtype of the query generator's matrix products: "auto" (default: on a CPU whichever of bf16 and fp32 runs this
        /// generator's products faster, timed once per machine and printed by <c>cora doctor</c>; fp32 on a GPU), "bf16"
        /// or "fp32" (exact, as CoRA's code computes). Its weights and the optimiser stay fp32, so the choice is not saved: set
        /// <c>CoraModel.GeneratorDtype</c> on a loaded model to change it. Measured on ML-1M: the same valid AUC either way.</summary>
        [Option("--generator-dtype", "dtype of the query generator's matrix products: auto, bf16 or fp32 (auto = whichever this CPU runs faster, measured; fp32 = exact).")]
        public string GeneratorDtype { get; set; } = CoraDefaults.GeneratorDtype;
        /// <summary>CPU threads for libtorch (0 = one per core). Lower it when several processes share the machine. Applies to the process.</summary>
        [Option("--threads", "CPU threads for libtorch (0 = one per core); lower it when several runs share the machine.", Min = 0, Max = 1024)]
        public int Threads { get; set; }
        /// <summary>Store the frozen LLM's files inside the saved model (default: referenced by path and SHA-256).</summary>
        public bool EmbedLlm { get; set; }

        /// <summary>Item catalog as a dictionary (id -> title). Either this or <see cref="Items"/> (not needed for Mf).</summary>
        public IDictionary<int, string>? ItemTitles { get; set; }
        /// <summary>Item catalog for item ids given as text (e.g. "tt0111161" -> "The Shawshank Redemption (1994)"); use instead of
        /// <see cref="ItemTitles"/> when the item id column is text or a key of text.</summary>
        public IDictionary<string, string>? ItemTitlesByTextId { get; set; }
        /// <summary>Item catalog as an IDataView with <see cref="ItemsIdColumnName"/> and <see cref="ItemsTitleColumnName"/>.</summary>
        public IDataView? Items { get; set; }
        /// <summary>The item id column of <see cref="Items"/>.</summary>
        public string ItemsIdColumnName { get; set; } = "ItemId";
        /// <summary>The title column (text) of <see cref="Items"/>.</summary>
        public string ItemsTitleColumnName { get; set; } = "Title";

        /// <summary>The model: method, rank, generator size (<see cref="QueryGeneratorOptions.Paper"/> or <see cref="QueryGeneratorOptions.Compact"/>), prompt, seed.</summary>
        public CoraModelOptions Model { get; set; } = new();
        /// <summary>Optimisation of the LLM-based methods.</summary>
        public TrainingOptions Training { get; set; } = new();
        /// <summary>Settings of the CF stage trained by Fit (shared by MF, LightGCN and SASRec; each model's own values are marked).</summary>
        public MatrixFactorizationOptions MatrixFactorization { get; set; } = new();
        /// <summary>The CF stage Fit trains: <see cref="CollaborativeKind.Mf"/> (default), <see cref="CollaborativeKind.LightGcn"/> or
        /// <see cref="CollaborativeKind.SasRec"/> (the paper's CoRA-MF, CoRA-LGCN, CoRA-SAS). Ignored when <see cref="CollaborativeModel"/> is set.</summary>
        public CollaborativeKind CollaborativeFilter { get; set; } = CollaborativeKind.Mf;

        // The shortcuts below are kept apart from the trees and applied over them when the trainer is made (EffectiveModel,
        // EffectiveTraining, EffectiveMatrixFactorization): setting one and assigning a whole tree, in either order, keeps both.
        private CoraMethod? _method;
        private QueryGeneratorOptions? _generator;
        private int? _epochs, _batchSize, _scoringBatchSize, _maxTrainRows, _maxSteps, _maxValidationRows, _validateEvery;
        private double? _learningRate;
        private (bool Set, string? Value) _checkpointDirectory;
        private long? _seed;

        /// <summary>cora (default) or one of the baselines: mf, llm-lora (TALLRec), collm (overrides Model.Method).</summary>
        public CoraMethod Method { get => _method ?? Model.Method; set => _method = value; }
        /// <summary>The query generator's size (overrides Model.QueryGenerator): <see cref="QueryGeneratorOptions.Paper"/> (default) or <see cref="QueryGeneratorOptions.Compact"/>.</summary>
        public QueryGeneratorOptions Generator { get => _generator ?? Model.QueryGenerator; set => _generator = value; }
        /// <summary>Passes over the training rows (overrides Training.Epochs).</summary>
        public int Epochs { get => _epochs ?? Training.Epochs; set => _epochs = value; }
        /// <summary>Rows per training step (overrides Training.BatchSize).</summary>
        public int BatchSize { get => _batchSize ?? Training.BatchSize; set => _batchSize = value; }
        /// <summary>Peak AdamW learning rate (overrides Training.LearningRate).</summary>
        public double LearningRate { get => _learningRate ?? Training.LearningRate; set => _learningRate = value; }
        /// <summary>Rows scored per LLM forward pass by the transformer (overrides Training.ScoringBatchSize).</summary>
        public int ScoringBatchSize { get => _scoringBatchSize ?? Training.ScoringBatchSize; set => _scoringBatchSize = value; }
        /// <summary>Use at most this many training rows (0 = all; a seeded random sample) (overrides Training.MaxTrainRows).</summary>
        public int MaxTrainRows { get => _maxTrainRows ?? Training.MaxTrainRows; set => _maxTrainRows = value; }
        /// <summary>Stop training after this many steps (0 = no limit) (overrides Training.MaxSteps).</summary>
        public int MaxSteps { get => _maxSteps ?? Training.MaxSteps; set => _maxSteps = value; }
        /// <summary>Folder for resumable checkpoints (overrides Training.CheckpointDirectory).</summary>
        public string? CheckpointDirectory { get => _checkpointDirectory.Set ? _checkpointDirectory.Value : Training.CheckpointDirectory; set => _checkpointDirectory = (true, value); }
        /// <summary>Cap on the validation rows used at each validation (overrides Training.MaxValidationRows).</summary>
        public int MaxValidationRows { get => _maxValidationRows ?? Training.MaxValidationRows; set => _maxValidationRows = value; }
        /// <summary>Validate every N steps (overrides Training.ValidateEvery).</summary>
        public int ValidateEvery { get => _validateEvery ?? Training.ValidateEvery; set => _validateEvery = value; }
        /// <summary>One seed for everything (overrides the Model, Training and MatrixFactorization seeds); reads Model.Seed unless set.</summary>
        public long Seed { get => _seed ?? Model.Seed; set => _seed = value; }

        /// <summary><see cref="Model"/> with the shortcuts set on these options applied.</summary>
        public CoraModelOptions EffectiveModel
        {
            get
            {
                var m = Model ?? new();
                return m with { Method = _method ?? m.Method, QueryGenerator = _generator ?? m.QueryGenerator, Seed = _seed ?? m.Seed };
            }
        }

        /// <summary><see cref="Training"/> with the shortcuts set on these options applied.</summary>
        public TrainingOptions EffectiveTraining
        {
            get
            {
                var t = Training ?? new();
                return t with
                {
                    Epochs = _epochs ?? t.Epochs, BatchSize = _batchSize ?? t.BatchSize, LearningRate = _learningRate ?? t.LearningRate,
                    ScoringBatchSize = _scoringBatchSize ?? t.ScoringBatchSize, MaxTrainRows = _maxTrainRows ?? t.MaxTrainRows, MaxSteps = _maxSteps ?? t.MaxSteps,
                    CheckpointDirectory = _checkpointDirectory.Set ? _checkpointDirectory.Value : t.CheckpointDirectory,
                    MaxValidationRows = _maxValidationRows ?? t.MaxValidationRows, ValidateEvery = _validateEvery ?? t.ValidateEvery, Seed = _seed ?? t.Seed,
                };
            }
        }

        /// <summary><see cref="MatrixFactorization"/> with the <see cref="Seed"/> shortcut applied.</summary>
        public MatrixFactorizationOptions EffectiveMatrixFactorization
        {
            get
            {
                var f = MatrixFactorization ?? new();
                return f with { Seed = _seed ?? f.Seed };
            }
        }

        /// <summary>Validation data for early stopping and model selection; when null, a seeded
        /// <see cref="ValidationFraction"/> of the training rows is held out.</summary>
        public IDataView? ValidationData { get; set; }
        /// <summary>The share of the training rows held out for validation when <see cref="ValidationData"/> is null (0 to 0.9).</summary>
        public double ValidationFraction { get; set; } = CoraDefaults.ValidationFraction;
        /// <summary>A CF model trained elsewhere (e.g. from ML.NET MF factor matrices via
        /// <see cref="CollaborativeFiltering.MatrixFactorization.FromMatrices"/>); when null, Fit trains MF first.</summary>
        public ICollaborativeModel? CollaborativeModel { get; set; }
        /// <summary>Typed progress after every training step (also written to <c>mlContext.Log</c>, source "Cora").</summary>
        public IProgress<TrainingProgress>? Progress { get; set; }
        /// <summary>Cancels Fit (MLContext.CancelExecution is honoured as well).</summary>
        public CancellationToken CancellationToken { get; set; }

        /// <summary>Every problem with these options, by name (nothing is loaded or trained).</summary>
        public IEnumerable<OptionError> Validate()
        {
            var e = EffectiveModel.Validate("Model.").Concat(EffectiveTraining.Validate("Training."))
                .Concat(EffectiveMatrixFactorization.Validate("MatrixFactorization."))
                .Concat(OptionChecks.Finite(nameof(ValidationFraction), ValidationFraction, 0, 0.9, minExclusive: true));
            foreach (var (n, v) in new[] { (nameof(UserIdColumnName), UserIdColumnName), (nameof(ItemIdColumnName), ItemIdColumnName), (nameof(LabelColumnName), LabelColumnName), (nameof(HistoryColumnName), HistoryColumnName) })
                if (string.IsNullOrWhiteSpace(v)) e = e.Append(new OptionError(n, "is empty; name the column."));
            if (CoraDevice.DeviceError(Device) is { } de) e = e.Append(new OptionError(nameof(Device), de + "."));
            e = e.Concat(OptionChecks.Declared(this));
            if (!Enum.IsDefined(CollaborativeFilter))
                e = e.Append(new OptionError(nameof(CollaborativeFilter), $"{(int)CollaborativeFilter} is not a CF model; use Mf, LightGcn or SasRec."));
            if (EffectiveMatrixFactorization.HistoryError(CollaborativeFilter) is { } he)
                e = e.Append(new OptionError("MatrixFactorization.History", he));
            else if (EffectiveMatrixFactorization.History is { } history and not UserHistory.None && CollaborativeModel is not null)
                e = e.Append(new OptionError("MatrixFactorization.History", $"{history.ToString().ToLowerInvariant()} is fitted when Fit trains MF; with CollaborativeModel given, leave it unset."));
            if (TrainingOptions.UserDropoutError(Method, CollaborativeFilter, EffectiveTraining.UserDropout) is { } ude)
                e = e.Append(new OptionError("Training.UserDropout", ude));
            if (CoraDevice.DtypeError(LlmDtype) is { } te) e = e.Append(new OptionError(nameof(LlmDtype), te + "."));
            if (CoraDevice.GeneratorDtypeError(GeneratorDtype) is { } ge) e = e.Append(new OptionError(nameof(GeneratorDtype), ge + "."));
            bool llm = Method is not CoraMethod.Mf;
            if (ItemTitles is not null && ItemTitlesByTextId is not null)
                e = e.Append(new OptionError(nameof(ItemTitlesByTextId), "Set ItemTitles (integer ids) or ItemTitlesByTextId (text ids), not both."));
            if (llm && ItemTitles is null && ItemTitlesByTextId is null && Items is null && PromptColumnName is null && TitleColumnName is null)
                e = e.Append(new OptionError(nameof(ItemTitles), "Cora needs the item catalog: set ItemTitles (id -> title) or Items (an IDataView with item id and title columns), give titles with the data (TitleColumnName), or ready prompts (PromptColumnName)."));
            if (llm && string.IsNullOrEmpty(LlmPath))
                e = e.Append(new OptionError(nameof(LlmPath), $"method {Method} needs an LLM: set LlmPath to a Hugging Face folder or a llama2.c .bin."));
            else if (llm && !File.Exists(LlmPath) && !Directory.Exists(LlmPath))
                e = e.Append(new OptionError(nameof(LlmPath), $"'{LlmPath}' does not exist; give a Hugging Face model folder or a llama2.c .bin."));
            return e;
        }
    }

    private readonly MLContext _ml;
    private readonly Options _options;
    private readonly ComputeTarget _target;

    internal CoraTrainer(MLContext ml, Options options)
    {
        _ml = ml ?? throw new ArgumentNullException(nameof(ml));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        OptionChecks.ThrowIfAny(options.Validate(), nameof(options));
        // Resolving the device here (not after the MF stage has trained) reports a missing GPU before any work starts.
        _target = ComputeTarget.Resolve(options.Device, options.LlmDtype);
        CoraDevice.SetThreads(options.Threads);
    }

    internal CoraColumns Columns => new(_options.UserIdColumnName, _options.ItemIdColumnName, _options.HistoryColumnName, _options.PromptColumnName, _options.LabelColumnName, _options.TitleColumnName);

    /// <summary>The input schema plus Score, Probability and PredictedLabel; throws naming a missing or mistyped input column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        Columns.Check(inputSchema, requireLabel: true);
        var cols = inputSchema.ToDictionary(c => c.Name);
        foreach (var c in CoraColumns.OutputShape()) cols[c.Name] = c;
        return new SchemaShape(cols.Values);
    }

    /// <summary>Reads the labelled rows, trains the CF stage and then the chosen method (progress to the context's log, cancelled by
    /// <c>CancelExecution</c> or <see cref="Options.CancellationToken"/>), and returns the scoring transformer.</summary>
    /// <param name="input">Rows with the user id, item id and label columns (and optionally history, title or prompt).</param>
    public CoraTransformer Fit(IDataView input)
    {
        var o = _options;
        var columns = Columns;
        columns.Check(input.Schema, requireLabel: true);
        columns = columns.ForFit(input.Schema);                        // text ids are numbered as the rows are read
        using var ch = ((IHostEnvironment)_ml).Start("Cora");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(o.CancellationToken);
        var ct = cts.Token;
        void Check() { if (MlNetInternals.IsCanceled(_ml)) cts.Cancel(); ct.ThrowIfCancellationRequested(); }

        var data = CoraRows.ReadAll(input, columns, withLabel: true, Check);
        if (data.Rows.Count == 0) throw new InvalidOperationException("Cora.Fit: the training data has no rows.");
        List<Interaction> train, valid;
        CoraRows.Data? validData = null;
        if (o.ValidationData is not null)
        {
            columns.Check(o.ValidationData.Schema, requireLabel: true);
            train = data.Rows;
            validData = CoraRows.ReadAll(o.ValidationData, columns, withLabel: true, Check);
            valid = validData.Rows;
        }
        else
        {
            var idx = Seeded.Permutation(data.Rows.Count, o.EffectiveTraining.Seed, "validation-split");
            int nValid = Math.Max(1, (int)(data.Rows.Count * o.ValidationFraction));
            var validSet = idx.Take(nValid).ToHashSet();
            train = data.Rows.Where((_, i) => !validSet.Contains(i)).ToList();
            valid = data.Rows.Where((_, i) => validSet.Contains(i)).ToList();
        }
        if (o.ItemTitles is not null && columns.ItemTexts is not null)
            throw new InvalidOperationException($"Cora.Fit: the item ids in '{columns.ItemId}' are text, but ItemTitles is keyed by integers. Pass the titles by text id (Options.ItemTitlesByTextId, or Trainers.Cora(llmPath, IDictionary<string, string> itemTitles, ...)).");
        if (o.ItemTitlesByTextId is not null && columns.ItemTexts is null)
            throw new InvalidOperationException($"Cora.Fit: ItemTitlesByTextId is set, but the item ids in '{columns.ItemId}' are numbers. Pass ItemTitles (integer id -> title).");
        var catalog = o.ItemTitles is not null ? new ItemCatalog(o.ItemTitles)
            : o.ItemTitlesByTextId is { } named ? new ItemCatalog(named.ToDictionary(kv => columns.ItemTexts!.Of(kv.Key, nameof(o.ItemTitlesByTextId)), kv => kv.Value))
            : o.Items is not null ? CoraRows.ReadCatalog(o.Items, o.ItemsIdColumnName, o.ItemsTitleColumnName, columns.ItemTexts)
            : new ItemCatalog(new Dictionary<int, string>());
        catalog = catalog.With(data.Titles).With(validData?.Titles ?? new());
        // Every id of the fit is numbered now; text the model has not seen from here on is scored as cold.
        if (columns.UserTexts is { } ut) ut.Growing = false;
        if (columns.ItemTexts is { } it) it.Growing = false;
        bool usesLlm = o.Method != CoraMethod.Mf;
        if (usesLlm && o.PromptColumnName is null)
        {
            var missing = catalog.MissingTargets(data.Rows.Concat(valid));
            if (missing.Count > 0) throw new InvalidOperationException("Cora.Fit: " + ItemCatalog.MissingTitleMessage(missing));
        }

        Check();
        ICollaborativeModel cf;
        if (o.CollaborativeModel is not null) cf = o.CollaborativeModel;
        else
        {
            ch.Info(MessageSensitivity.None, $"Cora: training the {CollaborativeModels.DisplayName(o.CollaborativeFilter)} stage on {train.Count} rows.");
            cf = CollaborativeModels.Train(o.CollaborativeFilter, train, valid, o.EffectiveMatrixFactorization, line => ch.Info(MessageSensitivity.None, "Cora: " + line), ct);
        }
        TrainingResult? trainingResult = null;
        LanguageModel? llm = usesLlm ? LanguageModel.Load(o.LlmPath!, _target) : null;
        var model = new CoraModel(o.EffectiveModel, llm, cf, catalog) { Users = UserProfiles.FromRows(data.Rows), GeneratorDtype = o.GeneratorDtype };
        if (llm is null) model.To(_target.Device);
        if (model.UsesLlm)
        {
            // Ready prompts replace the template for exactly these rows (training and validation).
            if (data.Prompts is { } prompts) for (int i = 0; i < data.Rows.Count; i++) model.SetPrompt(data.Rows[i], prompts[i]);
            if (validData?.Prompts is { } vp) for (int i = 0; i < valid.Count; i++) model.SetPrompt(valid[i], vp[i]);
            int trainRows = o.MaxTrainRows > 0 ? Math.Min(o.MaxTrainRows, train.Count) : train.Count;
            ch.Info(MessageSensitivity.None, $"Cora: training {o.Method} on {trainRows} rows, validating on {valid.Count}.");
            var progress = new SyncProgress(p =>
            {
                Check();
                o.Progress?.Report(p);
                // The first and the last step and about every tenth of the run: Info (progress a plain log shows); every other step: Trace.
                if (p.Step == 1 || p.Step == p.TotalSteps || p.Step % Math.Max(1, p.TotalSteps / 10) == 0) ch.Info(MessageSensitivity.None, p.ToString());
                else ch.Trace(MessageSensitivity.None, p.ToString());
            });
            trainingResult = TrainingLoop.Train(model, train, valid, o.EffectiveTraining, progress, line => ch.Info(MessageSensitivity.None, "Cora: " + line), ct);
        }
        return new CoraTransformer(_ml, model, columns with { Label = null }, o.ScoringBatchSize, o.EmbedLlm) { TrainingResult = trainingResult };
    }

    private sealed class SyncProgress : IProgress<TrainingProgress>
    {
        private readonly Action<TrainingProgress> _a;
        public SyncProgress(Action<TrainingProgress> a) => _a = a;
        public void Report(TrainingProgress value) => _a(value);
    }
}
