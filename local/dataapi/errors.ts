// The error shapes of the RDS Data API as @aws-sdk/client-rds-data 3.1143.0 models them
// (dist-es/schemas/schemas_0.js): name → HTTP status. The SDK reads the name from the
// `x-amzn-ErrorType` header and the members from the JSON body.

export const errorStatus = {
  AccessDeniedException: 403,
  BadRequestException: 400,
  DatabaseErrorException: 400,
  DatabaseNotFoundException: 404,
  DatabaseResumingException: 400,
  DatabaseUnavailableException: 504,
  ForbiddenException: 403,
  HttpEndpointNotEnabledException: 400,
  InternalServerErrorException: 500,
  InvalidResourceStateException: 400,
  InvalidSecretException: 400,
  NotFoundException: 404,
  SecretsErrorException: 400,
  ServiceUnavailableError: 503,
  StatementTimeoutException: 400,
  TransactionNotFoundException: 404,
  UnsupportedResultException: 400,
} as const;

export type DataApiErrorName = keyof typeof errorStatus;

export class DataApiError extends Error {
  readonly status: number;
  constructor(
    readonly errorName: DataApiErrorName,
    message: string,
    /** extra members of the error shape, e.g. `dbConnectionId` */
    readonly members: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = errorName;
    this.status = errorStatus[errorName];
  }
}

export const badRequest = (message: string): DataApiError => new DataApiError("BadRequestException", message);
