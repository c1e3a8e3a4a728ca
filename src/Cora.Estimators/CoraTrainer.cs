using Microsoft.ML.Cora.Collaborative;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Training;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>
/// The Cora trainer: an ML.NET estimator that fits on an IDataView of interactions (user id, item id, label,
/// history of item ids) plus an item catalog, trains the CF stage if none is given, trains the chosen method,
/// and returns a <see cref="CoraTransformer"/> that adds Score, Probability and PredictedLabel.
/// </summary>
public sealed class CoraTrainer : IEstimator<CoraTransformer>
{
    /// <summary>Default values, in one place, used by both overloads of the catalog method.</summary>
    public static class Defaults
    {
        public const string UserIdColumnName = "UserId";
        public const string ItemIdColumnName = "ItemId";
        public const string LabelColumnName = "Label";
        public const string HistoryColumnName = "History";
        public const CoraMethod Method = CoraMethod.Cora;
        public const int Epochs = 1;
        public const int BatchSize = 8;
        public const double LearningRate = 1e-3;
        public const int ScoringBatchSize = 16;
        public const double ValidationFraction = 0.1;
        public const long Seed = 2023;
    }

    /// <summary>Options of <see cref="CoraTrainer"/>. Each says what it does and how to choose it.</summary>
    public sealed class Options
    {
        /// <summary>User id column (Int32, Int64, UInt32, Single, Double or a key).</summary>
        public string UserIdColumnName { get; set; } = Defaults.UserIdColumnName;
        /// <summary>Item id column (same types as the user id).</summary>
        public string ItemIdColumnName { get; set; } = Defaults.ItemIdColumnName;
        /// <summary>Boolean label: did the user like the item? Needed by Fit only.</summary>
        public string LabelColumnName { get; set; } = Defaults.LabelColumnName;
        /// <summary>The user's earlier liked items, oldest first: a vector of ids, or text of space-separated ids.
        /// Ignored when <see cref="PromptColumnName"/> is set.</summary>
        public string HistoryColumnName { get; set; } = Defaults.HistoryColumnName;
        /// <summary>Optional column of ready prompt text; when set, it replaces the built-in template.</summary>
        public string? PromptColumnName { get; set; }

        /// <summary>Hugging Face model folder or llama2.c .bin (tokenizer beside it). Not needed for <see cref="CoraMethod.Mf"/>.</summary>
        public string? LlmPath { get; set; }
        /// <summary>"cpu" (default), "cuda", "cuda:N" or "auto" (CUDA when available). Checked when the trainer is created.</summary>
        public string Device { get; set; } = "cpu";
        /// <summary>dtype of the frozen LLM: "auto" (default: bf16 on CUDA, fp32 on the CPU), "bf16", "fp16" or "fp32". The query
        /// generator, the collaborative weights and the loss always compute in fp32.</summary>
        public string LlmDtype { get; set; } = "auto";
        /// <summary>Store the frozen LLM's files inside the saved model (default: referenced by path and SHA-256).</summary>
        public bool EmbedLlm { get; set; }

        /// <summary>Item catalog as a dictionary (id -> title). Either this or <see cref="Items"/>.</summary>
        public IDictionary<int, string>? ItemTitles { get; set; }
        /// <summary>Item catalog as an IDataView with <see cref="ItemsIdColumnName"/> and <see cref="ItemsTitleColumnName"/>.</summary>
        public IDataView? Items { get; set; }
        public string ItemsIdColumnName { get; set; } = "ItemId";
        public string ItemsTitleColumnName { get; set; } = "Title";

        /// <summary>cora (default) or one of the baselines: mf, llm-lora (TALLRec), collm.</summary>
        public CoraMethod Method { get; set; } = Defaults.Method;
        /// <summary>Passes over the training rows. Start with 1 and raise while validation AUC improves.</summary>
        public int Epochs { get; set; } = Defaults.Epochs;
        /// <summary>Rows per training step. Memory grows with batch x prompt length.</summary>
        public int BatchSize { get; set; } = Defaults.BatchSize;
        /// <summary>Peak AdamW learning rate of the trainable parts.</summary>
        public double LearningRate { get; set; } = Defaults.LearningRate;
        /// <summary>Rows scored per LLM forward pass by the transformer.</summary>
        public int ScoringBatchSize { get; set; } = Defaults.ScoringBatchSize;
        /// <summary>Use at most this many training rows (0 = all; a seeded random sample).</summary>
        public int MaxTrainRows { get; set; }
        /// <summary>Validation data for early stopping and model selection; when null, a seeded
        /// <see cref="ValidationFraction"/> of the training rows is held out.</summary>
        public IDataView? ValidationData { get; set; }
        public double ValidationFraction { get; set; } = Defaults.ValidationFraction;

        /// <summary>A CF model trained elsewhere (e.g. from ML.NET MF factor matrices via
        /// <see cref="MatrixFactorization.FromMatrices"/>); when null, Fit trains MF first.</summary>
        public MatrixFactorization? CollaborativeModel { get; set; }
        /// <summary>Settings of the MF stage trained by Fit.</summary>
        public MatrixFactorizationOptions MatrixFactorization { get; set; } = new();
        /// <summary>Advanced model settings (rank, alpha, targets, query generator, prompt template).</summary>
        public CoraModelOptions Model { get; set; } = new();
        /// <summary>Stop training after this many steps (0 = no limit); for quick runs.</summary>
        public int MaxSteps { get; set; }
        /// <summary>Folder for resumable training checkpoints (null = none); a rerun with the same folder resumes.</summary>
        public string? CheckpointDirectory { get; set; }
        /// <summary>Cap on the rows of the fixed random half of the validation data used at each validation (0 = no cap).</summary>
        public int MaxValidationRows { get; set; }
        /// <summary>Validate every N steps.</summary>
        public int ValidateEvery { get; set; } = 200;
        public long Seed { get; set; } = Defaults.Seed;
        /// <summary>Cancels Fit (MLContext.CancelExecution is honoured as well).</summary>
        public CancellationToken CancellationToken { get; set; }
    }

    private readonly MLContext _ml;
    private readonly Options _options;
    private readonly TorchSharp.torch.Device _device;

    internal CoraTrainer(MLContext ml, Options options)
    {
        _ml = ml ?? throw new ArgumentNullException(nameof(ml));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if (options.ItemTitles is null && options.Items is null && options.PromptColumnName is null)
            throw new ArgumentException("Cora needs the item catalog: set Options.ItemTitles (id -> title) or Options.Items (an IDataView with item id and title columns), or give ready prompts with Options.PromptColumnName.", nameof(options));
        if (options.Method != CoraMethod.Mf && string.IsNullOrEmpty(options.LlmPath))
            throw new ArgumentException($"Method {options.Method} needs an LLM: set Options.LlmPath to a Hugging Face folder or a llama2.c .bin.", nameof(options));
        if (Runtime.CoraDevice.DtypeError(options.LlmDtype) is { } dtypeError) throw new ArgumentException($"Options.LlmDtype: {dtypeError}.", nameof(options));
        // Resolving the device here (not after the MF stage has trained) reports a missing GPU before any work starts.
        _device = Runtime.CoraDevice.Resolve(options.Device);
    }

    internal CoraColumns Columns => new(_options.UserIdColumnName, _options.ItemIdColumnName, _options.HistoryColumnName, _options.PromptColumnName, _options.LabelColumnName);

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        Columns.Check(inputSchema, requireLabel: true);
        var cols = inputSchema.ToDictionary(c => c.Name);
        foreach (var c in CoraColumns.OutputShape()) cols[c.Name] = c;
        return new SchemaShape(cols.Values);
    }

    public CoraTransformer Fit(IDataView input)
    {
        var o = _options;
        var columns = Columns;
        columns.Check(input.Schema, requireLabel: true);
        using var ch = ((IHostEnvironment)_ml).Start("Cora");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(o.CancellationToken);
        var ct = cts.Token;
        void Check() { if (MlNetInternals.IsCanceled(_ml)) cts.Cancel(); ct.ThrowIfCancellationRequested(); }

        var (rows, prompts) = CoraRows.ReadAll(input, columns, withLabel: true, Check);
        if (rows.Count == 0) throw new InvalidOperationException("Cora.Fit: the training data has no rows.");
        List<Interaction> train, valid;
        List<string>? validPrompts = null;
        if (o.ValidationData is not null)
        {
            columns.Check(o.ValidationData.Schema, requireLabel: true);
            train = rows;
            (valid, validPrompts) = CoraRows.ReadAll(o.ValidationData, columns, withLabel: true, Check);
        }
        else
        {
            var idx = Enumerable.Range(0, rows.Count).ToArray();
            new Random((int)o.Seed).Shuffle(idx);
            int nValid = Math.Max(1, (int)(rows.Count * o.ValidationFraction));
            var validSet = idx.Take(nValid).ToHashSet();
            train = rows.Where((_, i) => !validSet.Contains(i)).ToList();
            valid = rows.Where((_, i) => validSet.Contains(i)).ToList();
        }
        var catalog = o.ItemTitles is not null ? new ItemCatalog(o.ItemTitles)
            : o.Items is not null ? CoraRows.ReadCatalog(o.Items, o.ItemsIdColumnName, o.ItemsTitleColumnName)
            : new ItemCatalog(new Dictionary<int, string>());
        if (o.PromptColumnName is null)
        {
            var missing = catalog.MissingTargets(rows);
            if (missing.Count > 0) throw new InvalidOperationException($"Cora.Fit: item(s) {string.Join(", ", missing)} have no title in the item catalog; add them to ItemTitles/Items.");
        }

        Check();
        MatrixFactorization cf;
        if (o.CollaborativeModel is not null) cf = o.CollaborativeModel;
        else
        {
            ch.Info(MessageSensitivity.None, $"Cora: training the MF stage on {train.Count} rows.");
            cf = Collaborative.MatrixFactorization.Train(train, valid, o.MatrixFactorization with { Seed = o.Seed },
                line => ch.Trace(MessageSensitivity.None, line), ct);
        }
        TrainingResult? trainingResult = null;
        LanguageModel? llm = o.Method == CoraMethod.Mf ? null : LanguageModel.Load(o.LlmPath!, device: o.Device, dtype: o.LlmDtype);
        var model = new CoraModel(o.Model with { Method = o.Method, Seed = o.Seed }, llm, cf, catalog);
        if (llm is null) model.To(_device);
        if (model.UsesLlm)
        {
            // Ready prompts replace the template for exactly these rows (training and validation).
            if (prompts is not null) for (int i = 0; i < rows.Count; i++) model.SetPrompt(rows[i], prompts[i]);
            if (validPrompts is not null) for (int i = 0; i < valid.Count; i++) model.SetPrompt(valid[i], validPrompts[i]);
            ch.Info(MessageSensitivity.None, $"Cora: training {o.Method} on {train.Count} rows, validating on {valid.Count}.");
            var progress = new SyncProgress(p =>
            {
                Check();
                ch.Info(MessageSensitivity.None, $"Cora step {p.Step}/{p.TotalSteps}: loss {p.Loss:F4}, {p.RowsPerSecond:F1} rows/s, ETA {p.Eta:hh\\:mm\\:ss}, valid AUC {(p.LastValidationAuc is { } a ? a.ToString("F4") : "-")}");
            });
            trainingResult = CoraModelTrainer.Train(model, train, valid, new TrainingOptions
            {
                Epochs = o.Epochs, BatchSize = o.BatchSize, LearningRate = o.LearningRate, MaxTrainRows = o.MaxTrainRows, Seed = o.Seed,
                MaxSteps = o.MaxSteps, ValidateEvery = o.ValidateEvery, ScoringBatchSize = o.ScoringBatchSize, CheckpointDirectory = o.CheckpointDirectory, MaxValidationRows = o.MaxValidationRows,
            }, progress, line => ch.Info(MessageSensitivity.None, "Cora: " + line), ct);
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
